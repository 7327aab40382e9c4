-- The WhatsApp assistant's tables (n8n_whatsapp_enabled), in its own database,
-- owned by its own user. Idempotent: applied on every run of the n8n role.
CREATE TABLE IF NOT EXISTS assistant_messages (
  id bigserial PRIMARY KEY,
  wa_id text NOT NULL,
  direction text NOT NULL CHECK (direction IN ('in', 'out')),
  message_id text UNIQUE,
  body text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS assistant_reminders (
  id bigserial PRIMARY KEY,
  wa_id text NOT NULL,
  body text NOT NULL,
  due_at timestamptz NOT NULL,
  sent_at timestamptz
);
CREATE INDEX IF NOT EXISTS assistant_reminders_due ON assistant_reminders (due_at) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS assistant_failures (
  id bigserial PRIMARY KEY,
  workflow text NOT NULL DEFAULT '',
  node text NOT NULL DEFAULT '',
  message text NOT NULL DEFAULT '',
  execution_id text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS assistant_daily_stats (
  day date PRIMARY KEY,
  messages_in integer NOT NULL,
  messages_out integer NOT NULL,
  failures integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
