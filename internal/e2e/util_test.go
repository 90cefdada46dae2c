package e2e

import "regexp"

func regexpOf(s string) *regexp.Regexp { return regexp.MustCompile(s) }
