// Package configfile turns /etc/rancher/k3s/config.yaml and its drop-ins into
// command-line arguments the way k3s does (k3s: pkg/configfilearg/parser.go and
// defaultparser.go; docs: installation/configuration.md):
//
//   - the file is $K3S_CONFIG_FILE, else --config/-c, else /etc/rancher/k3s/config.yaml;
//     drop-ins are <file>.d/*.yaml|*.yml (suffix case-insensitive) in name order; a
//     missing file and no drop-ins leaves the arguments as they are;
//   - a later key replaces an earlier one; `key+:` appends to the earlier value;
//   - each key becomes --key=value (-k=value for one letter), one per list item;
//   - the arguments are inserted right after the subcommand (server, agent, or
//     etcd-snapshot and its own subcommand), so the command line wins for single values
//     and adds to lists;
//   - for server and etcd-snapshot, keys that are not flags of the command are dropped
//     with the warning "Unknown flag --<key> found in config.yaml, skipping".
package configfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parser says where the config file is and which keys each command accepts.
type Parser struct {
	DefaultConfig string
	EnvName       string
	// ValidFlags per command name; a command without an entry is not filtered.
	ValidFlags map[string]map[string]bool
	// Warn receives the unknown-key warnings.
	Warn func(string)
}

// after lists the subcommands that read the file and how many more words follow them
// (k3s: defaultparser.go After: server, agent, etcd-snapshot:1).
var after = map[string]int{"server": 0, "agent": 0, "etcd-snapshot": 1}

// Parse returns args with the config file's arguments inserted after the subcommand.
// args[0] is the program name.
func (p Parser) Parse(args []string) ([]string, error) {
	start, command := findStart(args)
	if start < 0 {
		return args, nil
	}
	path := p.configPath(args)
	values, err := Load(path)
	if err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return args, nil
	}
	configArgs := values.Args()
	if valid, ok := p.ValidFlags[command]; ok && len(args) > 1 && args[1] == command {
		configArgs = p.strip(configArgs, valid)
	}
	out := append([]string{}, args[:start]...)
	out = append(out, configArgs...)
	return append(out, args[start:]...), nil
}

func findStart(args []string) (int, string) {
	for i, arg := range args {
		if i == 0 {
			continue
		}
		if extra, ok := after[arg]; ok {
			end := i + 1
			for j := 0; j < extra && end < len(args) && !strings.HasPrefix(args[end], "-"); j++ {
				end++
			}
			return end, arg
		}
	}
	return -1, ""
}

func (p Parser) configPath(args []string) string {
	if env := os.Getenv(p.EnvName); env != "" {
		return env
	}
	for i, arg := range args {
		for _, flag := range []string{"--config", "-c"} {
			if arg == flag && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(arg, flag+"=") {
				return strings.TrimPrefix(arg, flag+"=")
			}
		}
	}
	return p.DefaultConfig
}

func (p Parser) strip(args []string, valid map[string]bool) []string {
	var out []string
	for _, arg := range args {
		key := strings.TrimLeft(strings.SplitN(arg, "=", 2)[0], "-")
		if valid[key] {
			out = append(out, arg)
			continue
		}
		if p.Warn != nil {
			p.Warn(fmt.Sprintf("Unknown flag --%s found in config.yaml, skipping", key))
		}
	}
	return out
}

// Value is one key's merged value: a single scalar or a list.
type Value struct {
	Key    string
	Items  []string
	IsList bool
}

// Values are the merged keys in first-seen order.
type Values []*Value

// Args renders --key=value arguments.
func (vs Values) Args() []string {
	var out []string
	for _, v := range vs {
		prefix := "--"
		if len(v.Key) == 1 {
			prefix = "-"
		}
		for _, item := range v.Items {
			out = append(out, prefix+v.Key+"="+item)
		}
	}
	return out
}

// Get returns a key's value.
func (vs Values) Get(key string) (*Value, bool) {
	for _, v := range vs {
		if v.Key == key {
			return v, true
		}
	}
	return nil, false
}

// Files lists the config file (if present) and its drop-ins in the order k3s reads them.
func Files(path string) ([]string, error) {
	var files []string
	if info, err := os.Stat(path); err == nil && !info.IsDir() {
		files = append(files, path)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	entries, err := os.ReadDir(path + ".d")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var dropins []string
	for _, e := range entries {
		name := strings.ToLower(e.Name())
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		dropins = append(dropins, filepath.Join(path+".d", e.Name()))
	}
	sort.Strings(dropins)
	return append(files, dropins...), nil
}

// Load reads and merges the config file and its drop-ins.
func Load(path string) (Values, error) {
	files, err := Files(path)
	if err != nil {
		return nil, err
	}
	var values Values
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if values, err = merge(values, file, data); err != nil {
			return nil, err
		}
	}
	return values, nil
}

func merge(values Values, file string, data []byte) (Values, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return values, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("failed to parse %s: the top level is not a mapping", file)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i].Value
		appendTo := strings.HasSuffix(key, "+")
		key = strings.TrimSuffix(key, "+")
		items, isList, err := toItems(root.Content[i+1])
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", file, key, err)
		}
		if existing, ok := values.Get(key); ok {
			if appendTo {
				existing.Items = append(existing.Items, items...)
				existing.IsList = true
			} else {
				existing.Items, existing.IsList = items, isList
			}
			continue
		}
		values = append(values, &Value{Key: key, Items: items, IsList: isList || appendTo})
	}
	return values, nil
}

func toItems(n *yaml.Node) ([]string, bool, error) {
	switch n.Kind {
	case yaml.SequenceNode:
		var items []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, false, errors.New("list items must be scalars")
			}
			items = append(items, strings.TrimSpace(c.Value))
		}
		return items, true, nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return []string{""}, false, nil
		}
		return []string{strings.TrimSpace(n.Value)}, false, nil
	}
	return nil, false, errors.New("values must be scalars or lists")
}
