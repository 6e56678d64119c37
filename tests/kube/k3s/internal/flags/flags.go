// Package flags is a small declarative flag table over pflag with what k3s's
// urfave/cli flags have and pflag lacks: several long aliases, environment
// variables, and repeatable string flags that do not split on commas
// (k3s: pkg/cli/cmds/*.go; app.DisableSliceFlagSeparator = true).
package flags

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Kind of a flag's value.
type Kind int

const (
	String Kind = iota
	Bool
	Int
	Duration
	Strings
)

// Flag is one row of a command's flag table.
type Flag struct {
	Name    string   // long name, without --
	Short   string   // one-letter alias, or ""
	Aliases []string // further long names
	Kind    Kind
	Default string
	Env     []string
	Usage   string
}

// Set is a parsed flag table.
type Set struct {
	name   string
	table  []Flag
	fs     *pflag.FlagSet
	values map[string]*value
	args   []string
}

type value struct {
	kind    Kind
	text    string
	list    []string
	changed bool
}

func (v *value) String() string {
	if v.kind == Strings {
		return strings.Join(v.list, ",")
	}
	return v.text
}

func (v *value) Set(s string) error {
	switch v.kind {
	case Bool:
		if _, err := strconv.ParseBool(s); err != nil {
			return fmt.Errorf("invalid boolean value %q", s)
		}
	case Int:
		if _, err := strconv.Atoi(s); err != nil {
			return fmt.Errorf("invalid integer value %q", s)
		}
	case Duration:
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
	case Strings:
		v.list = append(v.list, s)
		v.changed = true
		return nil
	}
	v.text = s
	v.changed = true
	return nil
}

func (v *value) Type() string {
	switch v.kind {
	case Bool:
		return "bool"
	case Int:
		return "int"
	case Duration:
		return "duration"
	case Strings:
		return "value"
	}
	return "string"
}

// New builds the set for a command.
func New(name string, table []Flag) *Set {
	s := &Set{name: name, table: table, values: map[string]*value{}}
	s.fs = pflag.NewFlagSet(name, pflag.ContinueOnError)
	s.fs.SortFlags = false
	s.fs.SetInterspersed(true)
	for _, f := range table {
		v := &value{kind: f.Kind, text: f.Default}
		s.values[f.Name] = v
		usage := f.Usage
		if len(f.Env) > 0 {
			usage += " [$" + strings.Join(f.Env, ", $") + "]"
		}
		add := func(name, short string) {
			fl := s.fs.VarPF(v, name, short, usage)
			if f.Kind == Bool {
				fl.NoOptDefVal = "true"
			}
		}
		add(f.Name, f.Short)
		for _, alias := range f.Aliases {
			add(alias, "")
		}
	}
	return s
}

// Parse parses args, then fills unset flags from their environment variables.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	for _, f := range s.table {
		v := s.values[f.Name]
		if v.changed {
			continue
		}
		for _, env := range f.Env {
			if val, ok := os.LookupEnv(env); ok && val != "" {
				if err := v.Set(val); err != nil {
					return fmt.Errorf("$%s: %w", env, err)
				}
				break
			}
		}
	}
	s.args = s.fs.Args()
	return nil
}

// Args are the positional arguments left after parsing.
func (s *Set) Args() []string { return s.args }

// Usage prints the flag table.
func (s *Set) Usage() string { return s.fs.FlagUsages() }

func (s *Set) get(name string) *value {
	v, ok := s.values[name]
	if !ok {
		panic("flags: no flag " + name + " in " + s.name)
	}
	return v
}

func (s *Set) String(name string) string { return s.get(name).text }
func (s *Set) Bool(name string) bool {
	b, _ := strconv.ParseBool(s.get(name).text)
	return b
}
func (s *Set) Int(name string) int {
	i, _ := strconv.Atoi(s.get(name).text)
	return i
}
func (s *Set) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(s.get(name).text)
	return d
}

// Strings returns a repeatable flag's values; split, when true, also splits each on commas
// (k3s does that for CIDRs, node IPs and --disable: pkg/util/args.go SplitStringSlice).
func (s *Set) Strings(name string, split bool) []string {
	var out []string
	for _, item := range s.get(name).list {
		if !split {
			out = append(out, item)
			continue
		}
		for _, part := range strings.Split(item, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// Changed reports whether the flag was given (on the command line, config file or env).
func (s *Set) Changed(name string) bool { return s.get(name).changed }

// Names lists every long name and alias (without --) and every short name: what
// the config file may use as keys (k3s: pkg/configfilearg/parser.go stripInvalidFlags).
func Names(table []Flag) map[string]bool {
	out := map[string]bool{}
	for _, f := range table {
		out[f.Name] = true
		if f.Short != "" {
			out[f.Short] = true
		}
		for _, a := range f.Aliases {
			out[a] = true
		}
	}
	return out
}

// Sorted returns a set's keys in order (for stable messages).
func Sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
