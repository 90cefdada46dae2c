// Command wing is one of warren's six binaries; see internal/cli/wing.
package main

import (
	"os"

	"github.com/warrenhq/warren/internal/cli/wing"
)

func main() { os.Exit(wing.Main(os.Args[1:])) }
