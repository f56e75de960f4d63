package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by Parse when -h or --help was asked for; the usage
// has been written.
var ErrHelp = flag.ErrHelp

// Error is a configuration error. Its message names the env variable (and
// the flag), never the value of a secret.
type Error struct {
	Env  string // the environment variable, e.g. KAFKA_BROKERS
	Flag string // the matching flag, without dashes
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("config: %s (--%s): %v", e.Env, e.Flag, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Var is one bound setting.
type Var struct {
	set      *Set
	flagName string
	env      string
	usage    string
	def      string
	secret   bool
	required bool
	parse    func(string) error
	check    func() error
	value    string // the raw value that was applied
	fromFlag bool
}

// Required makes an empty value an error.
func (v *Var) Required() *Var { v.required = true; return v }

// Check adds a validation run after parsing; its error is reported against
// this variable.
func (v *Var) Check(f func() error) *Var { v.check = f; return v }

// Set is a worker's set of settings.
type Set struct {
	name   string
	lookup func(string) (string, bool)
	fs     *flag.FlagSet
	vars   []*Var
	out    io.Writer
}

// New returns an empty set for the named program. lookup is os.LookupEnv
// in production and a map in tests.
func New(name string, lookup func(string) (string, bool)) *Set {
	s := &Set{name: name, lookup: lookup, fs: flag.NewFlagSet(name, flag.ContinueOnError), out: os.Stderr}
	s.fs.SetOutput(io.Discard)
	return s
}

// SetOutput sets where the usage goes (stderr by default).
func (s *Set) SetOutput(w io.Writer) { s.out = w }

func (s *Set) bind(flagName, env, def, usage string, secret bool, parse func(string) error) *Var {
	v := &Var{set: s, flagName: flagName, env: env, usage: usage, def: def, secret: secret, parse: parse}
	s.vars = append(s.vars, v)
	s.fs.Func(flagName, usage, func(val string) error {
		v.value, v.fromFlag = val, true
		return nil
	})
	return v
}

// boolFlag is a flag that needs no value: --serve means --serve=true.
type boolFlag struct{ v *Var }

func (b boolFlag) String() string { return "" }
func (b boolFlag) Set(val string) error {
	b.v.value, b.v.fromFlag = val, true
	return nil
}
func (b boolFlag) IsBoolFlag() bool { return true }

// String binds a string setting.
func (s *Set) String(p *string, flagName, env, def, usage string) *Var {
	return s.bind(flagName, env, def, usage, false, func(val string) error { *p = val; return nil })
}

// Secret binds a secret: from the flag, else env, else the file named by
// env_FILE (trailing newline trimmed). Setting both env and env_FILE is an
// error. Its value is never printed.
func (s *Set) Secret(p *string, flagName, env, usage string) *Var {
	return s.bind(flagName, env, "", usage, true, func(val string) error { *p = val; return nil })
}

// Int binds an integer setting.
func (s *Set) Int(p *int, flagName, env string, def int, usage string) *Var {
	return s.bind(flagName, env, strconv.Itoa(def), usage, false, func(val string) error {
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("%q is not an integer", val)
		}
		*p = n
		return nil
	})
}

// Int64 binds a 64-bit integer setting, such as an amount in cents.
func (s *Set) Int64(p *int64, flagName, env string, def int64, usage string) *Var {
	return s.bind(flagName, env, strconv.FormatInt(def, 10), usage, false, func(val string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", val)
		}
		*p = n
		return nil
	})
}

// Float64 binds a decimal setting.
func (s *Set) Float64(p *float64, flagName, env string, def float64, usage string) *Var {
	return s.bind(flagName, env, strconv.FormatFloat(def, 'g', -1, 64), usage, false, func(val string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			// ParseFloat reads "NaN" and "Inf": neither is a setting, and
			// NaN would pass every "n <= 0" check.
			return fmt.Errorf("%q is not a finite number", val)
		}
		*p = f
		return nil
	})
}

// Bool binds a boolean setting (true/false/1/0).
func (s *Set) Bool(p *bool, flagName, env string, def bool, usage string) *Var {
	v := &Var{set: s, flagName: flagName, env: env, usage: usage, def: strconv.FormatBool(def), parse: func(val string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("%q is not true or false", val)
		}
		*p = b
		return nil
	}}
	s.vars = append(s.vars, v)
	s.fs.Var(boolFlag{v}, flagName, usage)
	return v
}

// Duration binds a duration setting ("250ms", "5s", "1h").
func (s *Set) Duration(p *time.Duration, flagName, env string, def time.Duration, usage string) *Var {
	return s.bind(flagName, env, def.String(), usage, false, func(val string) error {
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("%q is not a duration like 500ms or 5s", val)
		}
		*p = d
		return nil
	})
}

// List binds a comma-separated list; empty items are dropped.
func (s *Set) List(p *[]string, flagName, env, def, usage string) *Var {
	return s.bind(flagName, env, def, usage, false, func(val string) error {
		items := SplitList(val)
		if len(items) == 0 && strings.TrimSpace(val) != "" {
			return fmt.Errorf("%q has no items", val)
		}
		*p = items
		return nil
	})
}

// SplitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func SplitList(val string) []string {
	var out []string
	for _, item := range strings.Split(val, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Parse applies, for each setting, the flag if given, else the env
// variable, else (for a secret) the file named by env_FILE (both set is
// an error), else the default; then it runs the Required and Check rules. It returns the first
// error, as a *Error naming the variable, or ErrHelp after printing usage.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.PrintUsage()
			return ErrHelp
		}
		return fmt.Errorf("config: %v (see --help)", err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q (see --help)", s.fs.Arg(0))
	}
	for _, v := range s.vars {
		if err := v.apply(); err != nil {
			return &Error{Env: v.env, Flag: v.flagName, Err: err}
		}
	}
	for _, v := range s.vars {
		if v.check == nil {
			continue
		}
		if err := v.check(); err != nil {
			return &Error{Env: v.env, Flag: v.flagName, Err: err}
		}
	}
	return nil
}

func (v *Var) apply() error {
	val, set := v.value, v.fromFlag
	if !set {
		val, set = v.set.lookup(v.env)
	}
	if !v.fromFlag && v.secret {
		if path, ok := v.set.lookup(v.env + "_FILE"); ok && path != "" {
			if set {
				// Which one wins would be a guess: an empty VAR left by a
				// template would silently hide the file, a stale file the
				// variable. Refuse both.
				return fmt.Errorf("both %s and %s_FILE are set; set one of them", v.env, v.env)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read %s_FILE: %v", v.env, errors.Unwrap(err))
			}
			val, set = strings.TrimRight(string(b), "\r\n"), true
		}
	}
	if !set {
		val = v.def
	}
	if v.required && strings.TrimSpace(val) == "" {
		return errors.New("is required")
	}
	if err := v.parse(val); err != nil {
		if v.secret {
			return errors.New("invalid value")
		}
		return err
	}
	return nil
}

// PrintUsage writes every flag with its env variable and default.
func (s *Set) PrintUsage() {
	fmt.Fprintf(s.out, "Usage of %s:\nEvery setting is a flag or an environment variable; the flag wins.\n\n", s.name)
	for _, v := range s.vars {
		def := v.def
		switch {
		case v.secret:
			def = "(secret; also " + v.env + "_FILE)"
		case def == "":
			def = `""`
		}
		req := ""
		if v.required {
			req = " (required)"
		}
		fmt.Fprintf(s.out, "  --%s  $%s  default %s%s\n      %s\n", v.flagName, v.env, def, req, v.usage)
	}
}

// Vars lists the env variables of the set, in binding order; the deployment
// tests check that every variable a manifest sets exists here.
func (s *Set) Vars() []string {
	out := make([]string, 0, len(s.vars))
	for _, v := range s.vars {
		out = append(out, v.env)
	}
	return out
}

// CheckAddr validates a host:port listen address. An empty one is refused:
// net.Listen would take a random free port, where nothing reaches the
// listener (":0" asks for that on purpose).
func CheckAddr(addr string) error {
	if addr == "" {
		return errors.New(`is empty: set host:port (":0" picks a free port)`)
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("%q is not a host:port address", addr)
	}
	return nil
}

// CheckPositive validates that a number is > 0.
func CheckPositive[T int | int64 | float64 | time.Duration](n T) error {
	if !(n > 0) { // NaN too
		return fmt.Errorf("must be greater than zero, got %v", n)
	}
	return nil
}
