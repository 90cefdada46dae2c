// Command relay-server is one of warren's six binaries; see internal/cli/relayserver.
package main

import (
	"os"

	"github.com/warrenhq/warren/internal/cli/relayserver"
)

func main() { os.Exit(relayserver.Main(os.Args[1:])) }
