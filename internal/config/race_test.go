//go:build race

package config

// raceEnabled: the race detector multiplies time and memory, so bounds
// measured on the plain build are relaxed under it.
const raceEnabled = true
