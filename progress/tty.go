package progress

import (
	"fmt"
	"time"
)

// ANSI sequences: erase the whole line; cursor up n lines; erase from the
// cursor to the end of the screen.
const (
	eraseLine = "\x1b[2K"
	cursorUp  = "\x1b[%dA"
	eraseDown = "\x1b[J"
)

// frame appends the escape sequences and lines that redraw the live area:
// the items from p.flushed on, one line each. When the live area would be
// taller than the terminal (rows known, not final), finished items at its
// top are written once more and left behind in the scrollback, and what
// still does not fit is counted on a "... N more" line, because the cursor
// cannot go back up past the top of the screen. A final frame shows every
// live item. It returns buf unchanged when nothing changed since the last
// frame and no clock is running. p.mu is held.
func (p *Printer) frame(buf []byte, now time.Time, cols, rows int, final bool) []byte {
	if cols <= 0 {
		cols = defaultCols
	}
	live := p.order[p.flushed:]
	if !final && p.gen == p.drawnGen && cols == p.drawnCols && rows == p.drawnRows && !ticking(live) {
		return buf
	}
	p.drawnGen, p.drawnCols, p.drawnRows = p.gen, cols, rows
	if p.drawn > 0 {
		buf = fmt.Appendf(buf, cursorUp, p.drawn)
	}
	lines := 0
	room := len(live)
	if !final && rows > 0 {
		room = max(rows-1, 2) // the cursor's line stays below the frame
		for len(live) > room && live[0].status.final() {
			buf = p.appendLine(buf, live[0], now, cols)
			live = live[1:]
			p.flushed++
			lines++
		}
	}
	shown := live
	if len(live) > room {
		shown = live[:room-1]
	}
	for _, it := range shown {
		buf = p.appendLine(buf, it, now, cols)
	}
	n := len(shown)
	if len(shown) < len(live) {
		buf = append(buf, eraseLine...)
		start := len(buf)
		buf = fmt.Appendf(buf, "... %d more", len(live)-len(shown))
		buf = append(truncate(buf, start, cols), '\n')
		n++
	}
	if lines+n < p.drawn {
		buf = append(buf, eraseDown...)
	}
	p.drawn = n
	return buf
}

// ticking reports whether some item shows a clock that moves.
func ticking(items []*item) bool {
	for _, it := range items {
		if it.status == Resolving || it.status.active() {
			return true
		}
	}
	return false
}

// appendLine appends one item's line, erased first and cut to cols:
//
//	<short id>   <kind>   <status>    [bar] <current>/<total> <rate> <elapsed>
//
// An item without a kind, such as a reference being resolved, has no kind
// column.
func (p *Printer) appendLine(buf []byte, it *item, now time.Time, cols int) []byte {
	buf = append(buf, eraseLine...)
	start := len(buf)
	if it.kind == "" {
		buf = fmt.Appendf(buf, "%-12s %-11s", it.short, it.status)
	} else {
		buf = fmt.Appendf(buf, "%-12s %-8s %-11s", it.short, it.kind, it.status)
	}
	switch {
	case it.status.active():
		var tail []byte
		tail = appendAmount(tail, it.current, it.total)
		tail = append(tail, ' ')
		tail = append(tail, human(it.rate.rate(now, it.current))...)
		tail = append(tail, "/s "...)
		tail = append(tail, seconds(it.elapsed(now))...)
		// The bar takes what the numbers leave, up to a width that only
		// grows with the terminal, so that it does not jump about.
		width := min(max(cols-70, 10), 40)
		width = min(width, cols-(len(buf)-start)-len(tail)-4)
		if it.total > 0 && width >= 4 {
			buf = append(buf, ' ')
			buf = appendBar(buf, it.current, it.total, width)
		}
		buf = append(buf, ' ')
		buf = append(buf, tail...)
	case it.status == Resolving:
		buf = append(buf, ' ')
		buf = append(buf, seconds(it.elapsed(now))...)
	case it.status == Done:
		buf = append(buf, ' ')
		if n := it.size(); n > 0 {
			buf = append(buf, human(n)...)
			buf = append(buf, ' ')
		}
		buf = append(buf, seconds(it.elapsed(now))...)
	case it.status == Exists || it.status == Mounted:
		if it.total > 0 {
			buf = append(buf, ' ')
			buf = append(buf, human(it.total)...)
		}
	case it.status == Failed:
		if it.err != nil {
			buf = append(buf, ' ')
			buf = append(buf, sanitize(it.err.Error())...)
		}
	}
	return append(truncate(buf, start, cols), '\n')
}

// appendBar appends "[=====>    ]" with width cells inside the brackets.
func appendBar(buf []byte, current, total int64, width int) []byte {
	filled := width
	if current < total {
		filled = int(float64(width) * float64(max(current, 0)) / float64(total))
	}
	buf = append(buf, '[')
	for i := range width {
		switch {
		case i < filled:
			buf = append(buf, '=')
		case i == filled:
			buf = append(buf, '>')
		default:
			buf = append(buf, ' ')
		}
	}
	return append(buf, ']')
}
