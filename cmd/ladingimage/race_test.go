//go:build race

package main

// raceDetector says the race detector is on: under it, compressing and
// hashing the binary's tens of MiB for two builds takes about 20 s.
const raceDetector = true
