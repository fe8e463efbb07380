// On narrow screens the room list and the member list are panels that
// slide in over the messages (buttons #rooms-toggle and #members-toggle);
// Escape, the backdrop or opening a room closes them. On wide screens they
// are plain columns and none of this shows.

import { $ } from '../dom.js';

const PANELS = { rooms: 'sidebar', members: 'members-pane' };
let openPanel = null;

function togglePanel(name) {
  if (openPanel === name) closePanels();
  else showPanel(name);
}

function showPanel(name) {
  closePanels(false);
  openPanel = name;
  document.body.classList.add(`panel-${name}-open`);
  $(`${name}-toggle`).setAttribute('aria-expanded', 'true');
  $('panel-backdrop').hidden = false;
  $(PANELS[name]).querySelector('button, input, [tabindex]')?.focus();
}

export function closePanels(restoreFocus = true) {
  if (!openPanel) return;
  const name = openPanel;
  openPanel = null;
  document.body.classList.remove(`panel-${name}-open`);
  $(`${name}-toggle`).setAttribute('aria-expanded', 'false');
  $('panel-backdrop').hidden = true;
  if (restoreFocus && isNarrow()) $(`${name}-toggle`).focus();
}

function isNarrow() {
  return getComputedStyle($('rooms-toggle')).display !== 'none';
}

export function wirePanels() {
  $('rooms-toggle').addEventListener('click', () => togglePanel('rooms'));
  $('members-toggle').addEventListener('click', () => togglePanel('members'));
  $('panel-backdrop').addEventListener('click', () => closePanels());
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && openPanel) closePanels();
  });
}
