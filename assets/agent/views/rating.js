// A visitor's rating of an ended conversation (CSAT): stars, the score,
// and the comment as text.

import { h } from '../dom.js';
import { t } from '../i18n.js';

/** A badge for `rating` ({score, comment}); null when there is none. */
export function ratingBadge(rating, { withComment = false } = {}) {
  if (!rating) return null;
  const score = Math.max(1, Math.min(5, Number(rating.score) || 0));
  const label = rating.comment ? t('rating.withComment', { score, comment: rating.comment }) : t('rating.score', { score });
  return h(
    'span',
    { class: 'rating', title: label, dataset: { score: String(score) } },
    h('span', { class: 'rating__stars', 'aria-label': t('rating.score', { score }), role: 'img' }, '★'.repeat(score) + '☆'.repeat(5 - score)),
    withComment && rating.comment ? h('span', { class: 'rating__comment' }, rating.comment) : null,
  );
}
