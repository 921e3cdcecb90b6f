//go:build linux || darwin

package app

import "syscall"

// freeBytes is the space unprivileged users may still use in dir's file
// system; ok is false when it cannot be told.
func freeBytes(dir string) (free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true // Bsize is int64 on linux, uint32 on darwin
}
