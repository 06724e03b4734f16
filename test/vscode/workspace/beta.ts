export function beta(s: string): string {
  return s.trim();
}
