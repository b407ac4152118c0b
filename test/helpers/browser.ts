/** Headless Debian Chromium through playwright-core (no browser download): the flags this machine needs. */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Writes screenshots into docs/ only when asked (SLUICE_UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean. */
export const updateScreenshots = process.env.SLUICE_UPDATE_SCREENSHOTS === '1';
