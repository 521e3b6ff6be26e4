SELECT upper('abc'), lower('ABC'), upper('MiXeD 1'), lower(NULL);
