package api

// BusySlots is the number of request slots taken now (tests only).
func (s *Server) BusySlots() int { return len(s.slots) }
