// Command lading runs the Lading container registry.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Lading is a container image registry (OCI Distribution API v1.1).

Usage:
  lading serve [--config FILE] [--root DIR] [--addr HOST:PORT] ...
                                  serve the registry
  lading gc [--config FILE] [--root DIR] [--dry-run] [--grace DURATION] [--untagged] [--window DURATION]
                                  collect garbage, while serving goes on
  lading prune [--config FILE] [--root DIR] --repository GLOB [--tags GLOB]... [--keep N]
               [--older-than DURATION] [--dry-run] [--verbose] [--gc]
                                  remove old tags by a retention rule
  lading fsck [--config FILE] [--root DIR] [--repair]
                                  verify every blob and reference
  lading du [--config FILE] [--root DIR] [--repository GLOB]... [--json] [--top N]
                                  tell the space each repository uses
  lading import [--config FILE] [--root DIR] [--dry-run] [--repository GLOB]... DISTRIBUTION_ROOT
                                  copy a CNCF Distribution storage tree in
  lading config example           print a commented configuration file
  lading config check FILE        validate a configuration file
  lading version                  print version information
  lading help                     print this help

Run "lading serve -h" for the flags of serve. Every setting can also be
given in the environment as LADING_<KEY PATH> (http.addr: LADING_HTTP_ADDR).
`

// run is the whole command line, callable from tests; it returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "gc":
		return runGC(args[1:], stdout, stderr)
	case "prune":
		return runPrune(args[1:], stdout, stderr)
	case "fsck":
		return runFsck(args[1:], stdout, stderr)
	case "du":
		return runDu(args[1:], stdout, stderr)
	case "import":
		return runImport(args[1:], stdout, stderr)
	case "config":
		return runConfig(args[1:], stdout, stderr)
	case "version":
		printVersion(stdout)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "lading: unknown command %q\n\n%s", args[0], usage)
	return 2
}
