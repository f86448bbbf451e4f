/**
 * "New job": a modal form that submits a command job — command line, name, group, queue,
 * interactive, terminal, working directory. A native `<dialog>` gives focus trapping, Escape
 * and the backdrop for free.
 * @module
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Client, JobDescription, JobInfo, QueueStatus } from '@jobwire/client';
import { ShellWordsError, shellWords } from './shell-words.js';

/** Props of {@link SubmitDialog}. */
export interface SubmitDialogProps {
  client: Client;
  open: boolean;
  onClose(): void;
  /** Group filled in when the form opens (the group page it was opened from). */
  defaultGroup: string;
  /** Existing group paths, offered as suggestions. */
  groups: string[];
  onSubmitted(job: JobInfo): void;
}

/** See the module comment. */
export function SubmitDialog({ client, open, onClose, defaultGroup, groups, onSubmitted }: SubmitDialogProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [command, setCommand] = useState('');
  const [name, setName] = useState('');
  const [group, setGroup] = useState(defaultGroup);
  const [queue, setQueue] = useState('');
  const [queues, setQueues] = useState<QueueStatus[]>([]);
  const [interactive, setInteractive] = useState(false);
  const [tty, setTty] = useState(false);
  const [cwd, setCwd] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const el = dialog.current!;
    if (open && !el.open) {
      setGroup(defaultGroup);
      setError(undefined);
      el.showModal();
      client.getQueueStatus().then(
        (items) => {
          setQueues(items);
          setQueue((q) => q || (items.some((i) => i.name === 'multi') ? 'multi' : (items[0]?.name ?? '')));
        },
        () => setQueues([]),
      );
    } else if (!open && el.open) {
      el.close();
    }
  }, [open]);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    let words: string[];
    try {
      words = shellWords(command);
    } catch (err) {
      setError(err instanceof ShellWordsError ? `Command: ${err.message}` : String(err));
      return;
    }
    if (words.length === 0) {
      setError('Command: type the program to run and its arguments.');
      return;
    }
    const description: JobDescription = { executable: words[0]!, arguments: words.slice(1) };
    if (name.trim()) description.name = name.trim();
    if (group.trim()) description.group = group.trim();
    if (queue) description.queueName = queue;
    if (interactive || tty) description.interactive = true;
    if (tty) description.tty = true;
    if (cwd.trim()) description.workingDirectory = cwd.trim();
    setBusy(true);
    try {
      const job = await client.submitBatchJob(description);
      setCommand('');
      setName('');
      onSubmitted(job);
      onClose();
    } catch (err) {
      const field = (err as { field?: string }).field;
      setError(`${field ? `${field}: ` : ''}${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <dialog ref={dialog} class="submit-dialog" aria-labelledby="submit-title" onClose={onClose}>
      <form onSubmit={submit} method="dialog">
        <h2 id="submit-title">New job</h2>
        <div class="field">
          <label for="submit-command">Command</label>
          <input
            id="submit-command"
            name="command"
            required
            autoFocus
            spellcheck={false}
            autoComplete="off"
            value={command}
            onInput={(e) => setCommand(e.currentTarget.value)}
            placeholder="sh -c 'echo hello; sleep 1'"
            aria-describedby="submit-command-help"
          />
          <small id="submit-command-help" class="muted">
            Split into words like a shell does (quotes, backslashes), but not run by one: for pipes or variables use <code>sh -c '…'</code>.
          </small>
        </div>
        <div class="field-row">
          <div class="field">
            <label for="submit-name">Name</label>
            <input id="submit-name" name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="the program's name" />
          </div>
          <div class="field">
            <label for="submit-group">Group</label>
            <input id="submit-group" name="group" list="submit-groups" value={group} onInput={(e) => setGroup(e.currentTarget.value)} placeholder="e.g. analysis-7:step-2" spellcheck={false} />
            <datalist id="submit-groups">
              {groups.map((g) => (
                <option key={g} value={g} />
              ))}
            </datalist>
          </div>
        </div>
        <div class="field-row">
          <div class="field">
            <label for="submit-queue">Queue</label>
            <select id="submit-queue" name="queue" value={queue} onChange={(e) => setQueue(e.currentTarget.value)}>
              {queues.length === 0 ? <option value="">default</option> : null}
              {queues.map((q) => (
                <option key={q.name} value={q.name}>
                  {q.name} ({q.running} running, {q.queued} queued{q.limit !== null ? `, ${q.limit} at once` : ''})
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="submit-cwd">Working directory</label>
            <input id="submit-cwd" name="cwd" value={cwd} onInput={(e) => setCwd(e.currentTarget.value)} placeholder="the server's default" spellcheck={false} />
          </div>
        </div>
        <fieldset class="checks">
          <legend>Input</legend>
          <label>
            <input type="checkbox" name="interactive" checked={interactive || tty} disabled={tty} onChange={(e) => setInteractive(e.currentTarget.checked)} />
            Interactive: keep stdin open to type to the job
          </label>
          <label>
            <input type="checkbox" name="tty" checked={tty} onChange={(e) => setTty(e.currentTarget.checked)} />
            Terminal (tty): run it in a pseudo-terminal, for shells and full-screen programs
          </label>
        </fieldset>
        {error ? (
          <p class="notice" role="alert">
            {error}
          </p>
        ) : null}
        <div class="dialog-buttons">
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Submitting…' : 'Submit'}
          </button>
        </div>
      </form>
    </dialog>
  );
}
