-- Webhook secrets in the Standard Webhooks form: `whsec_` followed by the base64 of the HMAC key. A
-- secret stored before was the key's text; its UTF-8 bytes stay the key, so receivers keep verifying
-- with `whsec_` + base64(old secret).
update webhook_subscriptions
   set secret = 'whsec_' || translate(encode(convert_to(secret, 'UTF8'), 'base64'), E'\n', '')
 where secret not like 'whsec\_%';

-- Retention sweeps delete delivery-log rows by age.
create index webhook_deliveries_attempted_idx on webhook_deliveries (attempted_at);
