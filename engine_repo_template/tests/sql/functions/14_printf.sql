SELECT printf('%d-%s', 5, 'x'), printf('%.2f', 3.14159), printf('%5d|', 42), printf('%-5d|', 42), printf('%x', 255), printf('%05.1f', 2.25), printf('%%');
