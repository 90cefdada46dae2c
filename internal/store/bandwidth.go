package store

import (
	"context"
	"fmt"
	"time"
)

// BandwidthUsage is what one user received of wing terminal output in one
// calendar month (UTC), as the relay metered it (docs/protocols/wing.md §3.2).
type BandwidthUsage struct {
	UserID  string
	Month   string // "2006-01"
	Bytes   int64
	Updated time.Time
}

// BandwidthStore keeps per-user bandwidth usage, so a monthly cap holds
// across relay restarts (and adds up across the nodes of a cluster).
type BandwidthStore interface {
	// AddBandwidthUsage adds delta bytes (≥ 0) to userID's usage in month,
	// creating the record, sets its Updated to at, and returns the new
	// total. Concurrent adds all count. ErrInvalid for an empty or non-text
	// user id, a month not shaped "2006-01", or a negative delta.
	AddBandwidthUsage(ctx context.Context, userID, month string, delta int64, at time.Time) (int64, error)
	// GetBandwidthUsage returns userID's usage in month, or ErrNotFound
	// when nothing was recorded.
	GetBandwidthUsage(ctx context.Context, userID, month string) (*BandwidthUsage, error)
	// ListBandwidthUsage returns every user's usage in month, ordered by
	// user id.
	ListBandwidthUsage(ctx context.Context, month string) ([]*BandwidthUsage, error)
	// DeleteBandwidthUsageBefore deletes the usage of every month before
	// month and reports how many records there were.
	DeleteBandwidthUsageBefore(ctx context.Context, month string) (int, error)
}

// Month is the usage month of t: "2006-01" in UTC.
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// ValidateBandwidth reports, as ErrInvalid, why a usage record cannot be
// written. Backends call it before writing.
func ValidateBandwidth(userID, month string, delta int64) error {
	if userID == "" {
		return fmt.Errorf("%w: bandwidth usage without user id", ErrInvalid)
	}
	if delta < 0 {
		return fmt.Errorf("%w: negative bandwidth delta %d", ErrInvalid, delta)
	}
	if err := ValidMonth(month); err != nil {
		return err
	}
	return text("bandwidth user id", userID)
}

// ValidMonth reports, as ErrInvalid, a month not shaped "2006-01".
func ValidMonth(month string) error {
	if t, err := time.Parse("2006-01", month); err != nil || t.Format("2006-01") != month {
		return fmt.Errorf("%w: month %q is not YYYY-MM", ErrInvalid, month)
	}
	return nil
}
