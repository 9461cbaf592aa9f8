package sfu

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"unsafe"

	"github.com/pion/dtls/v2"
	"github.com/pion/webrtc/v3"
)

// This file is the only code that reaches into Pion's unexported state
// (reflect and unsafe on webrtc.DTLSTransport): the own SRTP output needs a
// subscriber leg's DTLS connection (for its keys) and SRTP endpoint (to write
// on a leg that is not UDP). Nothing else in the package may read a
// dependency's private fields; add any such need here, next to a check that
// NewEngine runs and a test that fails when it stops working
// (TestOwnSRTPNegotiatedLeg).

var errNoDTLSInternals = errors.New("sfu: pion DTLS transport internals not found")

// dtlsInternals returns the DTLS connection and the SRTP mux endpoint of a
// Pion DTLSTransport (unexported fields conn and srtpEndpoint).
func dtlsInternals(dt *webrtc.DTLSTransport) (*dtls.Conn, io.Writer, error) {
	v := reflect.ValueOf(dt).Elem()
	cf := v.FieldByName("conn")
	ef := v.FieldByName("srtpEndpoint")
	if !cf.IsValid() || cf.Type() != reflect.TypeOf((*dtls.Conn)(nil)) || !ef.IsValid() || ef.Kind() != reflect.Pointer {
		return nil, nil, errNoDTLSInternals
	}
	conn := *(**dtls.Conn)(unsafe.Pointer(cf.UnsafeAddr()))
	epv := reflect.NewAt(ef.Type(), unsafe.Pointer(ef.UnsafeAddr())).Elem()
	if conn == nil || epv.IsNil() {
		return nil, nil, fmt.Errorf("%w: not started", errNoDTLSInternals)
	}
	ep, ok := epv.Interface().(io.Writer)
	if !ok {
		return nil, nil, errNoDTLSInternals
	}
	return conn, ep, nil
}

// CheckPionInternals verifies that Pion's DTLSTransport still has the
// unexported fields the own SRTP output reads (conn, srtpEndpoint). NewEngine
// runs it at start: when it fails every leg falls back to Pion's writer, so
// it is logged as an error and exported as opscenter_sfu_own_srtp_available 0.
func CheckPionInternals() error {
	t := reflect.TypeOf(webrtc.DTLSTransport{})
	cf, ok := t.FieldByName("conn")
	if !ok || cf.Type != reflect.TypeOf((*dtls.Conn)(nil)) {
		return fmt.Errorf("%w: DTLSTransport.conn", errNoDTLSInternals)
	}
	ef, ok := t.FieldByName("srtpEndpoint")
	if !ok || ef.Type.Kind() != reflect.Pointer || !ef.Type.Implements(reflect.TypeOf((*io.Writer)(nil)).Elem()) {
		return fmt.Errorf("%w: DTLSTransport.srtpEndpoint", errNoDTLSInternals)
	}
	return nil
}
