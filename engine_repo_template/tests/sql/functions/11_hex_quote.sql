SELECT hex('abc'), hex(255), quote('it''s'), quote(NULL), quote(12), quote(1.5), hex(x'0aff');
