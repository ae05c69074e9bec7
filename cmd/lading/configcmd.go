package main

import (
	"fmt"
	"io"

	"github.com/lading-registry/lading/config"
)

// runConfig serves `lading config example` (a commented file with every
// key at its default) and `lading config check FILE`.
func runConfig(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "example":
		fmt.Fprint(stdout, config.Example())
		return 0
	case len(args) == 2 && args[0] == "check":
		cfg, err := config.Load(args[1], nil, nil)
		if err == nil {
			err = checkAuth(cfg)
		}
		if err != nil {
			// 2, as serve exits on the same mistakes.
			fmt.Fprintf(stderr, "%s:\n%v\n", args[1], err)
			return 2
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return 0
	}
	fmt.Fprint(stderr, "usage: lading config example | lading config check FILE\n")
	return 2
}
