package cpustat

var ParseInfoCPU = parseInfoCPU
