package loadgen

import (
	"encoding/binary"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ceilMmsghdr is struct mmsghdr (linux/socket.h), as sfu's mmsghdr.
type ceilMmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// ceilPlatform is the sender's sendmmsg state: one message header per
// batch buffer, set up once, and the RawConn callback made once, so that a
// flush does not allocate (the same as sfu/egress_sendmmsg_linux.go).
type ceilPlatform struct {
	raw   syscall.RawConn
	hdrs  []ceilMmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4

	off, cnt int
	sent     int
	errno    unix.Errno
	send     func(fd uintptr) bool
}

func (p *ceilPlatform) init(s *ceilingSender) error {
	raw, err := s.conn.SyscallConn()
	if err != nil {
		return err
	}
	p.raw = raw
	n := len(s.bufs)
	p.hdrs = make([]ceilMmsghdr, n)
	p.iovs = make([]unix.Iovec, n)
	p.names = make([]unix.RawSockaddrInet4, n)
	for i := range p.hdrs {
		p.iovs[i].Base = &s.bufs[i][0]
		p.hdrs[i].hdr.Iov = &p.iovs[i]
		p.hdrs[i].hdr.SetIovlen(1)
		p.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&p.names[i]))
		p.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	}
	p.send = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&p.hdrs[p.off])),
			uintptr(p.cnt), unix.MSG_DONTWAIT, 0, 0)
		p.sent, p.errno = int(r), e
		return true
	}
	return nil
}

// flush sends datagrams 0..n-1 with raw non-blocking sendmmsg, like the
// SFU's: the runtime keeps this goroutine's P during the call; EAGAIN
// falls back to a waiting WriteTo for that datagram; another error skips it.
func (p *ceilPlatform) flush(s *ceilingSender) {
	n := s.n
	for i := 0; i < n; i++ {
		p.iovs[i].SetLen(s.lens[i])
		p.hdrs[i].len = 0
		a := s.subs[s.dst[i]].addr
		sa := &p.names[i]
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(a.Port))
		copy(sa.Addr[:], a.IP.To4())
	}
	off := 0
	for off < n {
		p.off, p.cnt = off, n-off
		err := p.raw.Write(p.send)
		sent, errno := p.sent, p.errno
		s.calls.Add(1)
		switch {
		case err != nil: // socket closed
			s.errs.Add(uint64(n - off))
			return
		case errno == 0 && sent > 0:
			s.sent.Add(uint64(sent))
			off += sent
		case errno == unix.EAGAIN:
			s.writeOne(off)
			off++
		default:
			s.errs.Add(1)
			off++
		}
	}
}

// processCPU is this process's user+system CPU time (getrusage: µs
// resolution, where /proc/self/stat has 10 ms).
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
