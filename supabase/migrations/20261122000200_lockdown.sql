-- Only the service key touches the registry.
--
-- Supabase grants every new table in `public` to anon and authenticated by
-- default, so the anon key (which ships inside device images and web pages)
-- could read and change the fleet. Revoke that, and keep row level security on
-- as a second wall: with no policies, a role without BYPASSRLS sees no rows.
-- service_role bypasses RLS and keeps every privilege.

ALTER TABLE public.devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.updates ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.device_updates ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE public.devices, public.updates, public.device_updates FROM anon, authenticated;
GRANT ALL ON TABLE public.devices, public.updates, public.device_updates TO service_role;
