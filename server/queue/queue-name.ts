/** A queue name: 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit. */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
