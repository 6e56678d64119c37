package kubelet

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func procSys(t *testing.T, values map[string]int) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range values {
		p := filepath.Join(dir, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTheWantedValuesPass(t *testing.T) {
	if err := CheckKernelDefaults(procSys(t, KernelDefaults)); err != nil {
		t.Fatal(err)
	}
}

func TestEachDifferentValueIsNamed(t *testing.T) {
	values := map[string]int{}
	for k, v := range KernelDefaults {
		values[k] = v
	}
	values["vm/overcommit_memory"] = 0
	values["kernel/panic"] = 0
	err := CheckKernelDefaults(procSys(t, values))
	if err == nil {
		t.Fatal("no error for two wrong values")
	}
	for _, want := range []string{
		"invalid kernel flag: vm/overcommit_memory, expected value: 1, actual value: 0",
		"invalid kernel flag: kernel/panic, expected value: 10, actual value: 0",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "panic_on_oops") {
		t.Errorf("%q names a value that is right", err)
	}
}

func TestAMissingSettingIsAnError(t *testing.T) {
	values := map[string]int{"vm/overcommit_memory": 1}
	if err := CheckKernelDefaults(procSys(t, values)); err == nil {
		t.Fatal("no error with settings missing")
	}
}
