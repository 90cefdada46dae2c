package buildinfo

import (
	"runtime"
	"testing"
)

func TestGetPrefersLinkerValues(t *testing.T) {
	old := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = old[0], old[1], old[2] })

	Version, Commit, Date = "v1.2.3", "abc123", "2026-01-02T03:04:05Z"
	got := Get()
	want := Info{Version: "v1.2.3", Commit: "abc123", Date: "2026-01-02T03:04:05Z",
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if got != want {
		t.Fatalf("Get() = %+v, want %+v", got, want)
	}
}

func TestGetNeverEmpty(t *testing.T) {
	old := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = old[0], old[1], old[2] })

	Version, Commit, Date = "", "", ""
	got := Get()
	if got.Version == "" || got.Commit == "" || got.Date == "" || got.GoVersion == "" {
		t.Fatalf("Get() has empty fields: %+v", got)
	}
}
