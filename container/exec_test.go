package container

import "testing"

func TestCappedBuffer(t *testing.T) {
	var b cappedBuffer
	chunk := make([]byte, 5<<20)
	for i := 0; i < 4; i++ {
		if n, err := b.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v; a capped buffer takes everything", n, err)
		}
	}
	if len(b.b) != MaxExecOutput || b.dropped != 20<<20-MaxExecOutput {
		t.Errorf("kept %d, dropped %d; want %d, %d", len(b.b), b.dropped, MaxExecOutput, 20<<20-MaxExecOutput)
	}
}
