package server

import (
	"reflect"
	"testing"
)

func TestMergeArgs(t *testing.T) {
	got := mergeArgs(map[string]string{"b": "1", "a": "x", "c": "p"},
		[]string{"b=2", "--a+=y", "c-=q", "d=new"})
	want := []string{"--a=x,y", "--b=2", "--c=q,p", "--d=new"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}
