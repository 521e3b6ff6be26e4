SELECT 'a' || NULL, NULL || NULL, length(NULL), upper(NULL);
