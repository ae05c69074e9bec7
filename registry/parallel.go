package registry

import "sync"

// readConcurrency bounds the small reads one request has in flight: enough
// to hide an object store's round trip, few enough not to flood it.
const readConcurrency = 8

// forEach runs fn(0) ... fn(n-1), at most readConcurrency at a time, and
// returns the error of the lowest i that failed, so that the answer does not
// depend on scheduling.
func forEach(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, readConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
