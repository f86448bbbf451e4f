/**
 * A windowed list with fixed-height rows: only the rows in view (plus a few either side) are in
 * the DOM, so 10,000 jobs cost what 40 do. Hand-written because no windowing library is
 * installed, and with fixed row heights it is a page of arithmetic: the spacer is
 * `count × rowHeight` tall, and the rows from `scrollTop / rowHeight` on are placed absolutely.
 * @module
 */
import type { JSX, VNode } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';

/** Props of {@link VirtualList}; other attributes go to the scrolling element. */
export interface VirtualListProps extends Omit<JSX.HTMLAttributes<HTMLDivElement>, 'ref'> {
  count: number;
  /** Height of every row, px. */
  rowHeight: number;
  /** Renders row `index` at `top` (px, absolute). */
  renderRow(index: number, top: number): VNode;
  /** The row with the keyboard focus. */
  activeIndex?: number;
  /**
   * Bumped by the owner on every keyboard move: the active row is then scrolled into view.
   * (Not on every change of `activeIndex`: rows arriving live above it must not yank the view.)
   */
  revealCount?: number;
  /** Rows rendered beyond each edge. @defaultValue 10 */
  overscan?: number;
  /** Receives the scrolling element (for page-wise keyboard moves). */
  elementRef?: { current: HTMLDivElement | null };
}

/** See the module comment. */
export function VirtualList({ count, rowHeight, renderRow, activeIndex, revealCount, overscan = 10, elementRef, class: className, ...rest }: VirtualListProps) {
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(800);

  useLayoutEffect(() => {
    const el = ref.current!;
    if (elementRef) elementRef.current = el;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el || activeIndex === undefined || activeIndex < 0 || activeIndex >= count) return;
    const top = activeIndex * rowHeight;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = top + rowHeight - el.clientHeight;
    setScrollTop(el.scrollTop);
  }, [revealCount]);

  // A shrinking list can leave the scroll position past its end; the browser clamps it.
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && el.scrollTop !== scrollTop) setScrollTop(el.scrollTop);
  }, [count]);

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + height) / rowHeight) + overscan);
  const rows: VNode[] = [];
  for (let i = first; i < last; i++) rows.push(renderRow(i, i * rowHeight));

  return (
    <div ref={ref} class={`vlist ${className ?? ''}`} onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)} {...rest}>
      <div class="vlist-spacer" style={{ height: `${count * rowHeight}px` }}>
        {rows}
      </div>
    </div>
  );
}
