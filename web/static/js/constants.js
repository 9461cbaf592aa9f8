// @ts-check
// Values fixed by the log's schema (store/migrations): incident categories, severities
// and statuses, in display order.
export const CATEGORIES = ['security_order', 'health_covid', 'complaint', 'logistics', 'communications', 'other'];
export const SEVERITIES = ['info', 'low', 'high', 'critical'];
export const STATUSES = ['open', 'acknowledged', 'in_progress', 'resolved', 'closed'];
