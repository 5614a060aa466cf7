package cri

// streamBatch is how many items one streamed response carries: well under
// gRPC's message limit for any pod or container.
const streamBatch = 256

// sendBatches is the loop of the Stream* calls: it sends items in
// responses made by resp of at most streamBatch items each, and none for
// no item. It stops at the first error of send.
func sendBatches[T, R any](items []T, send func(R) error, resp func([]T) R) error {
	for len(items) > 0 {
		n := min(len(items), streamBatch)
		if err := send(resp(items[:n])); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
