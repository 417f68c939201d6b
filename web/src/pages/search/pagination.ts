/**
 * Which page links to show: the first, the last, and two either side of the current page, with gaps
 * between ("1 … 4 5 [6] 7 8 … 20"), so the list stays short for any number of pages.
 */
export type PageItem = number | 'gap';

export function pageCount(total: number, perPage: number): number {
  if (!Number.isFinite(total) || total <= 0 || perPage <= 0) return 0;
  return Math.ceil(total / perPage);
}

export function pageWindow(current: number, pages: number, radius = 2): PageItem[] {
  if (pages <= 0) return [];
  const wanted = new Set<number>([1, pages]);
  for (let page = current - radius; page <= current + radius; page += 1) {
    if (page >= 1 && page <= pages) wanted.add(page);
  }
  const sorted = [...wanted].sort((a, b) => a - b);
  const items: PageItem[] = [];
  for (const page of sorted) {
    const previous = items[items.length - 1];
    if (typeof previous === 'number' && page - previous === 2) items.push(previous + 1);
    else if (typeof previous === 'number' && page - previous > 2) items.push('gap');
    items.push(page);
  }
  return items;
}
