/**
 * Light and dark: follows the system unless the user picks one (kept in localStorage). The
 * effective theme is set as `data-theme` on `<html>`, which the stylesheet keys on; the
 * terminal takes its colours from the same choice.
 * @module
 */
import { useEffect, useState } from 'preact/hooks';

/** The user's choice. */
export type ThemePreference = 'system' | 'light' | 'dark';
/** What is shown. */
export type Theme = 'light' | 'dark';

const KEY = 'jobwire.theme';
const media = (): MediaQueryList => window.matchMedia('(prefers-color-scheme: dark)');

function readPreference(): ThemePreference {
  try {
    const v = window.localStorage.getItem(KEY);
    if (v === 'light' || v === 'dark') return v;
  } catch {
    // No storage: follow the system.
  }
  return 'system';
}

function effective(pref: ThemePreference): Theme {
  return pref === 'system' ? (media().matches ? 'dark' : 'light') : pref;
}

/** Sets `data-theme` before the first render, so the page does not flash the wrong colours. */
export function applyStoredTheme(): void {
  document.documentElement.dataset.theme = effective(readPreference());
}

/** The preference, a setter, and the theme in effect (updated when the system changes). */
export function useTheme(): [ThemePreference, (pref: ThemePreference) => void, Theme] {
  const [pref, setPref] = useState<ThemePreference>(readPreference);
  const [theme, setTheme] = useState<Theme>(() => effective(pref));
  useEffect(() => {
    const update = (): void => {
      const t = effective(pref);
      document.documentElement.dataset.theme = t;
      setTheme(t);
    };
    update();
    const mq = media();
    mq.addEventListener('change', update);
    return () => mq.removeEventListener('change', update);
  }, [pref]);
  const choose = (next: ThemePreference): void => {
    try {
      if (next === 'system') window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, next);
    } catch {
      // Not kept; still applied.
    }
    setPref(next);
  };
  return [pref, choose, theme];
}
