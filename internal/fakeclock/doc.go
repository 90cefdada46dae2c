// Package fakeclock is a clock a test moves forward instead of sleeping,
// for the engines' Config.Now fields: a TTL passes with Advance, at once
// and the same way on a slow machine as on a fast one.
package fakeclock
