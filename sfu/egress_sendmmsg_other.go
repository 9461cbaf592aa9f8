//go:build !linux

package sfu

// batchPlatform: no sendmmsg here, so the engine does not batch.
type batchPlatform struct{}

func (p *batchPlatform) init(*sendBatch) bool { return false }

func (p *batchPlatform) flush(b *batchConn, sb *sendBatch, n int) {
	for i := 0; i < n; i++ {
		b.writeOne(sb, i)
	}
}
