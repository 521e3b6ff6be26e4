SELECT iif(1, 'yes', 'no'), iif(0, 'yes', 'no'), iif(NULL, 'yes', 'no'), iif(2 > 1, 10, 20);
