package deps

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/hamba/avro/v2"
	_ "github.com/hamba/avro/v2/registry"
	_ "github.com/hamba/avro/v2/soe"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/testcontainers/testcontainers-go/modules/redpanda"
	_ "github.com/testcontainers/testcontainers-go/modules/redis"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/plugin/kprom"
	_ "github.com/google/uuid"
)
