/* Copy buttons: <button data-copy="URL or text">. Relative URLs are copied absolute (a share
   link is pasted elsewhere). A separate file so it needs no inline script. */
(() => {
  'use strict';
  document.addEventListener('click', async (e) => {
    const btn = e.target.closest('button[data-copy]');
    if (!btn) return;
    e.preventDefault();
    const raw = btn.dataset.copy;
    const text = raw.startsWith('/') ? new URL(raw, location.href).href : raw;
    let ok = false;
    try { await navigator.clipboard.writeText(text); ok = true; } catch (err) { ok = false; }
    if (!ok) {   // no clipboard permission (plain http, old browser): select a copy to copy by hand
      const box = document.createElement('input');
      box.value = text; box.className = 'copy-fallback'; btn.after(box); box.select();
      try { ok = document.execCommand('copy'); } catch (err) { ok = false; }
    }
    const label = btn.textContent;
    btn.textContent = ok ? 'Copied' : 'Copy failed';
    btn.dataset.copied = ok ? 'true' : 'false';
    setTimeout(() => { btn.textContent = label; }, 1500);
  });
})();
