-- The device registry: devices, the updates published to them, and each
-- device's progress through each update.
--
-- Safe on a project that already has the Javia tables: every statement either
-- creates what is missing or widens what exists; no data is rewritten.

CREATE TABLE IF NOT EXISTS public.devices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_uuid text NOT NULL UNIQUE,
    device_name text,
    timezone text DEFAULT 'UTC',
    status text NOT NULL DEFAULT 'online',
    current_version text,
    last_seen timestamptz DEFAULT now(),
    registered_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb DEFAULT '{}'::jsonb
);

-- Javia projects predate these.
ALTER TABLE public.devices ADD COLUMN IF NOT EXISTS ansible_host text;
COMMENT ON COLUMN public.devices.ansible_host IS
    'Address Ansible connects to; when null the inventory uses metadata.ip_address, then metadata.hostname.';

-- Javia allowed online/offline/updating; the fleet also retires devices.
ALTER TABLE public.devices DROP CONSTRAINT IF EXISTS devices_status_check;
ALTER TABLE public.devices ADD CONSTRAINT devices_status_check
    CHECK (status IN ('online', 'offline', 'updating', 'retired'));

CREATE INDEX IF NOT EXISTS devices_status_idx ON public.devices (status);

CREATE TABLE IF NOT EXISTS public.updates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    version text NOT NULL UNIQUE,
    description text,
    update_type text NOT NULL DEFAULT 'scheduled',
    package_url text,
    requires_system_packages boolean NOT NULL DEFAULT false,
    system_packages jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE public.updates ADD COLUMN IF NOT EXISTS update_type text NOT NULL DEFAULT 'scheduled';
ALTER TABLE public.updates DROP CONSTRAINT IF EXISTS updates_update_type_check;
ALTER TABLE public.updates ADD CONSTRAINT updates_update_type_check
    CHECK (update_type IN ('scheduled', 'urgent'));

CREATE TABLE IF NOT EXISTS public.device_updates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id uuid NOT NULL REFERENCES public.devices (id) ON DELETE CASCADE,
    update_id uuid NOT NULL REFERENCES public.updates (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending',
    scheduled_for timestamptz,
    started_at timestamptz,
    completed_at timestamptz,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, update_id)
);

ALTER TABLE public.device_updates ADD COLUMN IF NOT EXISTS scheduled_for timestamptz;
ALTER TABLE public.device_updates DROP CONSTRAINT IF EXISTS device_updates_status_check;
ALTER TABLE public.device_updates ADD CONSTRAINT device_updates_status_check
    CHECK (status IN ('pending', 'downloading', 'installing', 'completed', 'failed', 'rolled_back'));

CREATE INDEX IF NOT EXISTS device_updates_update_idx ON public.device_updates (update_id, status);
