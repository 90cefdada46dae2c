// Package suggest finds the known name closest to a misspelt one, for
// "unknown key ... (did you mean ...?)" errors in config files and probe
// check lists.
package suggest

// Closest returns the name in known nearest to name by edit distance, if
// it is at most 3 edits away, else "". Ties go to the earlier name, so
// callers pass known in a stable order.
func Closest(name string, known []string) string {
	best, bestD := "", 4
	for _, k := range known {
		if d := distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
