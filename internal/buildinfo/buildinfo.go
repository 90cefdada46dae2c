// Package buildinfo reports what build of warren is running.
//
// Release builds set Version, Commit and Date with -ldflags -X; a plain
// `go build` or `go install` falls back to what the Go toolchain recorded
// in the binary (module version, VCS revision and time).
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set at link time: -X github.com/warrenhq/warren/internal/buildinfo.Version=v1.2.3 etc.
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// Info describes one build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the build information, filling what ldflags left empty from
// debug.ReadBuildInfo, and "unknown" where neither knows.
func Get() Info {
	info := Info{
		Version:   Version,
		Commit:    Commit,
		Date:      Date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}
