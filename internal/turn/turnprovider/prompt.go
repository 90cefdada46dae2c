package turnprovider

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// PromptSolver asks a person at a terminal: it writes the challenge's URL
// to Out and reads the answer, one line, from In. An empty line or the
// end of In cancels (ErrChallengeCanceled). probe resolve --interactive
// and tunnel-client turn --interactive use it.
type PromptSolver struct {
	In  io.Reader
	Out io.Writer

	once  sync.Once
	mu    sync.Mutex // one challenge at a time
	lines chan string
}

// Solve implements ChallengeSolver.
func (s *PromptSolver) Solve(ctx context.Context, c Challenge) (ChallengeAnswer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One reader for the solver's life: a line typed late is not lost to
	// an abandoned read.
	s.once.Do(func() {
		s.lines = make(chan string)
		go func() {
			defer close(s.lines)
			sc := bufio.NewScanner(s.In)
			for sc.Scan() {
				s.lines <- sc.Text()
			}
		}()
	})
	fmt.Fprintf(s.Out, "challenge: %s asks a person to complete a %s (stage %s, id %s)\n", c.Provider, c.Kind, c.Stage, c.ID)
	if c.URL != "" {
		fmt.Fprintf(s.Out, "challenge: open %s in a browser\n", c.URL)
	}
	if c.ImageURL != "" && c.ImageURL != c.URL {
		fmt.Fprintf(s.Out, "challenge: captcha image %s\n", c.ImageURL)
	}
	fmt.Fprintf(s.Out, "challenge: type the answer (the text, or the token the page shows) and press Enter; an empty line cancels\n")
	select {
	case <-ctx.Done():
		return ChallengeAnswer{}, ctx.Err()
	case line, ok := <-s.lines:
		line = strings.TrimSpace(line)
		if !ok || line == "" {
			return ChallengeAnswer{}, ErrChallengeCanceled
		}
		return ChallengeAnswer{Key: line}, nil
	}
}
