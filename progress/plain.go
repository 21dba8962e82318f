package progress

import "time"

// plainLines appends the queued status changes, the latest status of items
// whose changes did not fit the queue, and a progress line for each item
// that has been moving bytes for plainEvery since its last line. p.mu is
// held.
func (p *Printer) plainLines(buf []byte, now time.Time) []byte {
	for i, e := range p.queue {
		buf = appendEvent(buf, e)
		p.queue[i] = event{} // let the error go
	}
	p.queue = p.queue[:0]
	if p.lost {
		for _, it := range p.order {
			if it.dirty {
				buf = appendEvent(buf, it.event(now))
				it.dirty = false
			}
		}
		p.lost = false
	}
	for _, it := range p.order {
		if it.status.active() && now.Sub(it.lastLine) >= plainEvery {
			buf = appendName(buf, it)
			buf = append(buf, it.status...)
			buf = append(buf, ' ')
			buf = appendAmount(buf, it.current, it.total)
			buf = append(buf, " ("...)
			buf = append(buf, human(it.rate.rate(now, it.current))...)
			buf = append(buf, "/s)\n"...)
			it.lastLine = now
		}
	}
	return buf
}

// appendEvent appends a line such as
// "layer sha256:0123456789ab: done 40.1 MiB in 1.1s".
func appendEvent(buf []byte, e event) []byte {
	buf = appendName(buf, e.it)
	buf = append(buf, e.status...)
	switch e.status {
	case Failed:
		if e.err != nil {
			buf = append(buf, ": "...)
			buf = append(buf, sanitize(e.err.Error())...)
		}
	case Done:
		var n int64
		switch {
		case e.transferred > 0:
			n = e.transferred
		case e.total > 0:
			n = e.total
		default:
			n = e.current
		}
		if n > 0 {
			buf = append(buf, ' ')
			buf = append(buf, human(n)...)
		}
		buf = append(buf, " in "...)
		buf = append(buf, seconds(e.took)...)
	case Resolving, Waiting:
	default:
		if e.total > 0 {
			buf = append(buf, ' ')
			buf = append(buf, human(e.total)...)
		}
	}
	return append(buf, '\n')
}

// appendName appends "<kind> <id>: ", or "<id>: " without a kind.
func appendName(buf []byte, it *item) []byte {
	if it.kind != "" {
		buf = append(buf, it.kind...)
		buf = append(buf, ' ')
	}
	buf = append(buf, it.long...)
	return append(buf, ": "...)
}

// appendAmount appends "12.3 MiB/40.1 MiB", or "12.3 MiB" when the total is
// unknown.
func appendAmount(buf []byte, current, total int64) []byte {
	buf = append(buf, human(current)...)
	if total > 0 {
		buf = append(buf, '/')
		buf = append(buf, human(total)...)
	}
	return buf
}
