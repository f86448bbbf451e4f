/**
 * Splits the submit form's command line into an executable and its arguments the way a POSIX
 * shell splits words — quotes and backslashes — without running a shell: no variables, globs,
 * pipes or redirections (for those, submit `sh -c '…'`).
 * @module
 */

/** A command line that cannot be split (an open quote). */
export class ShellWordsError extends Error {
  override name = 'ShellWordsError';
}

/** The words of `line`. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError("a single quote (') is not closed");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= line.length) throw new ShellWordsError('a double quote (") is not closed');
        const d = line[i]!;
        if (d === '"') {
          i++;
          break;
        }
        // Inside double quotes a backslash only escapes these, as in sh.
        if (d === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1]!)) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
    } else if (c === '\\') {
      if (i + 1 < line.length && line[i + 1] !== '\n') {
        word += line[i + 1];
        inWord = true;
      }
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
