package probe

import (
	"fmt"
	"time"
)

// Result is what one run of a check found.
type Result struct {
	// Status is the check's own verdict. It is ignored (CRITICAL) when
	// Err is set and Status is OK; the runner applies thresholds to OK.
	Status Status
	// Message says what was found, for a human: "relay 1.2.3 healthy",
	// "echo of 32 bytes through port 8080". With Err set and no Message,
	// the error's text is used.
	Message string
	// Err is why the check failed: a failure is CRITICAL.
	Err error
	// Stage names the step that failed ("dns", "connect", "upgrade", ...).
	Stage string
	// Stages are the measured steps, in order.
	Stages []Stage
	// Details are small facts worth keeping (versions, protocols, sizes).
	Details map[string]string
}

// Stage is one measured step of a check.
type Stage struct {
	Name     string
	Duration time.Duration
}

// Begin starts timing a stage; call the returned func when it ends.
func (r *Result) Begin(name string) func() {
	start := time.Now()
	return func() { r.Stages = append(r.Stages, Stage{Name: name, Duration: time.Since(start)}) }
}

// Fail sets the failing stage and error and returns r, for
// `return res.Fail("connect", err)`.
func (r Result) Fail(stage string, err error) Result {
	r.Stage = stage
	r.Err = err
	return r
}

// Failf is Fail with a formatted error.
func (r Result) Failf(stage, format string, args ...any) Result {
	return r.Fail(stage, fmt.Errorf(format, args...))
}

// Detail records a fact.
func (r *Result) Detail(k, v string) {
	if r.Details == nil {
		r.Details = map[string]string{}
	}
	r.Details[k] = v
}
