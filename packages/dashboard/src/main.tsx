/**
 * Entry point of the dashboard page.
 * @module
 */
import { render } from 'preact';
import { App } from './app.js';
import { takeTokenFromAddress } from './auth.js';
import './styles.css';
import { applyStoredTheme } from './theme.js';

// First of all: a sign-in link's token leaves the address bar before anything renders.
takeTokenFromAddress();
applyStoredTheme();
render(<App />, document.getElementById('app')!);
