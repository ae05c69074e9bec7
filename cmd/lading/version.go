package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at link time: go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc".
var (
	version = "dev"
	commit  = ""
)

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "lading %s\ncommit %s\n%s\n", buildVersion(), buildCommit(), runtime.Version())
}

// buildVersion is the version set at link time, else the module's version
// the go command recorded: `go install …/cmd/lading@v1.2.3` records
// v1.2.3, a build in a checkout a pseudo-version or "(devel)".
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(version, bi)
}

func versionOf(linked string, bi *debug.BuildInfo) string {
	if linked != "dev" || bi == nil || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return linked
	}
	return bi.Main.Version
}

// buildCommit is the commit set at link time, else the one the go command
// recorded from the working tree ("-dirty" when it had local changes).
func buildCommit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
