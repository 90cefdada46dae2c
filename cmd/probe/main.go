// Command probe is one of warren's six binaries; see internal/cli/probe.
package main

import (
	"os"

	"github.com/warrenhq/warren/internal/cli/probe"
)

func main() { os.Exit(probe.Main(os.Args[1:])) }
