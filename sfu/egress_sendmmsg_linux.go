package sfu

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr (linux/socket.h).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// batchPlatform holds the sendmmsg message headers, each pointing at its
// preallocated buffer, iovec and socket address (set up once).
type batchPlatform struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // big enough for either family

	// one sendmmsg call: arguments and results, and the RawConn callback
	// made once so that a flush does not allocate
	off, cnt int
	sent     int
	errno    unix.Errno
	send     func(fd uintptr) bool
}

func (p *batchPlatform) init(b *sendBatch) bool {
	p.hdrs = make([]mmsghdr, maxBatch)
	p.iovs = make([]unix.Iovec, maxBatch)
	p.names = make([]unix.RawSockaddrInet6, maxBatch)
	for i := range p.hdrs {
		p.iovs[i].Base = &b.bufs[i][0]
		p.hdrs[i].hdr.Iov = &p.iovs[i]
		p.hdrs[i].hdr.SetIovlen(1)
		p.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&p.names[i]))
	}
	p.send = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&p.hdrs[p.off])),
			uintptr(p.cnt), unix.MSG_DONTWAIT, 0, 0)
		p.sent, p.errno = int(r), e
		return true
	}
	return true
}

// setAddr encodes the destination of message i. A destination this socket
// cannot reach (IPv6 on an IPv4 socket) gets no address, so the kernel
// fails that one message (EDESTADDRREQ) and flush skips it.
func (p *batchPlatform) setAddr(b *batchConn, sb *sendBatch, i int) {
	a := sb.addrs[i]
	sa := &p.names[i]
	*sa = unix.RawSockaddrInet6{}
	p.hdrs[i].hdr.Namelen = 0
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))
	binary.BigEndian.PutUint16(port[:], uint16(a.Port))
	if ip4 := a.IP.To4(); ip4 != nil && !b.v6 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		copy(sa4.Addr[:], ip4)
		p.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		return
	}
	if b.v6 && len(a.IP) > 0 {
		sa.Family = unix.AF_INET6
		copy(sa.Addr[:], a.IP.To16()) // IPv4 becomes v4-mapped on the dual-stack socket
		p.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
}

// flush sends messages 0..n-1 with non-blocking sendmmsg. The syscall is
// raw (it cannot block: MSG_DONTWAIT), so the runtime does not hand this
// goroutine's P to another thread for its duration. A datagram the socket
// cannot take right now (EAGAIN) goes through a normal, waiting WriteTo; one
// that fails otherwise (e.g. an unreachable peer) is skipped.
func (p *batchPlatform) flush(b *batchConn, sb *sendBatch, n int) {
	for i := 0; i < n; i++ {
		p.iovs[i].SetLen(sb.lens[i])
		p.hdrs[i].len = 0
		p.setAddr(b, sb, i)
	}
	off := 0
	for off < n {
		p.off, p.cnt = off, n-off
		err := b.raw.Write(p.send)
		sent, errno := p.sent, p.errno
		b.calls.Add(1)
		switch {
		case err != nil: // socket closed
			b.errs.Add(uint64(n - off))
			return
		case errno == 0 && sent > 0:
			b.sent.Add(uint64(sent))
			off += sent
		case errno == unix.EAGAIN:
			b.writeOne(sb, off)
			off++
		default:
			b.errs.Add(1)
			off++
		}
	}
}
