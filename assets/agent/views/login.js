// The screens before the app: sign in, first-run registration, accepting
// an invite, and "signed out" when a session ends on its own.

import { api, setSession } from '../api.js';
import { field, h, mount } from '../dom.js';
import { languagePicker, t } from '../i18n.js';

function card(title, ...body) {
  return h(
    'main',
    { class: 'auth' },
    h(
      'section',
      { class: 'auth__card' },
      h('div', { class: 'auth__brand' }, h('img', { src: '/app/icons/icon.svg', alt: '', width: 32, height: 32 }), h('span', {}, 'My-Chat')),
      h('h1', {}, title),
      ...body,
      h('div', { class: 'auth__lang' }, languagePicker()),
    ),
  );
}

// `autofocus` only acts on page load; these screens are built later.
function focusFirst(root) {
  root.querySelector('[autofocus]')?.focus();
}

function errorText(e) {
  if (e.status === 401) return t('auth.badLogin');
  if (e.status === 429) return t('error.tooMany');
  if (e.status === 0) return t('error.network');
  return e.message || t('error.generic');
}

/** A form that posts `fields` to `path` and hands the session to `done`. */
function authForm({ fields, submit, path, done, body = (v) => v }) {
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { class: 'btn btn--primary', type: 'submit' }, submit);
  const form = h('form', { class: 'stack' }, ...fields, error, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    error.hidden = true;
    button.disabled = true;
    try {
      const session = await api('POST', path, body(values), { auth: false });
      setSession(session);
      done(session);
    } catch (err) {
      error.textContent = errorText(err);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function input(name, type, autocomplete, extra = {}) {
  return h('input', { name, type, autocomplete, required: true, ...extra });
}

export async function renderLogin(root, { done, notice }) {
  const registerLink = h('p', { class: 'auth__alt', hidden: true }, t('auth.noAccount'), ' ', h('a', { href: '#/register' }, t('auth.createOrg')));
  mount(
    root,
    card(
      t('auth.signIn'),
      notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
      authForm({
        path: '/auth/login',
        submit: t('auth.signIn'),
        done,
        fields: [
          field(t('auth.email'), input('email', 'email', 'username', { autofocus: true })),
          field(t('auth.password'), input('password', 'password', 'current-password')),
        ],
      }),
      registerLink,
    ),
  );
  document.body.dataset.screen = 'login';
  focusFirst(root);
  try {
    const reg = await api('GET', '/auth/registration', undefined, { auth: false });
    registerLink.hidden = !reg?.open;
  } catch {
    // The link simply stays hidden.
  }
}

export function renderRegister(root, { done }) {
  mount(
    root,
    card(
      t('auth.createOrg'),
      h('p', { class: 'muted' }, t('auth.registerIntro')),
      authForm({
        path: '/auth/register',
        submit: t('auth.register'),
        done,
        fields: [
          field(t('auth.orgName'), input('organizationName', 'text', 'organization', { autofocus: true, maxlength: 100 })),
          field(t('auth.yourName'), input('displayName', 'text', 'name', { maxlength: 100 })),
          field(t('auth.email'), input('email', 'email', 'username')),
          field(t('auth.password'), input('password', 'password', 'new-password', { minlength: 8 }), t('auth.passwordHint')),
        ],
      }),
      h('p', { class: 'auth__alt' }, h('a', { href: '#/login' }, t('auth.haveAccount'))),
    ),
  );
  document.body.dataset.screen = 'register';
  focusFirst(root);
}

export function renderInvite(root, { token, done }) {
  mount(
    root,
    card(
      t('auth.acceptInvite'),
      h('p', { class: 'muted' }, t('auth.inviteIntro')),
      authForm({
        path: '/auth/accept-invite',
        submit: t('auth.setPassword'),
        done,
        body: (v) => ({ token, password: v.password }),
        fields: [field(t('auth.password'), input('password', 'password', 'new-password', { minlength: 8, autofocus: true }), t('auth.passwordHint'))],
      }),
    ),
  );
  document.body.dataset.screen = 'invite';
  focusFirst(root);
}

export function renderSignedOut(root) {
  mount(
    root,
    card(t('auth.signedOutTitle'), h('p', { class: 'signed-out', role: 'status' }, t('auth.signedOutText')), h('a', { class: 'btn btn--primary', href: '#/login' }, t('auth.signInAgain'))),
  );
  document.body.dataset.screen = 'signed-out';
}
