package load

import "errors"

// ErrNothingAccepted is returned by Run when requests were sent but none
// was answered 202: the target is down or rejects everything.
var ErrNothingAccepted = errors.New("load: no request was accepted")
